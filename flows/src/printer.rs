//! The output formats of `hubble observe`: `compact`, `dict`, `table` and
//! `json`/`jsonpb` (one `GetFlowsResponse` per line).
//!
//! Matched byte for byte against cilium/cilium `hubble/pkg/printer/printer.go`
//! (commit 18293194f3615d3915981f78347644986a3f01d1), `terminal.go` and
//! `color.go`:
//! - times are `time.StampMilli` (`Jan _2 15:04:05.000`) in UTC, or another
//!   `--time-format` layout (see [`crate::timefmt`]), `N/A` when missing or
//!   invalid;
//! - endpoints are `ns/pod:port`, else `ns/service`, else the DNS names
//!   joined by `,`, else the IP (IPv6 in brackets when a port follows);
//!   without an IP layer the Ethernet addresses are shown;
//! - identities are `(ID:n)`, or `(world)`, `(host)`, … for reserved ones;
//! - the arrow is `->` (is_reply=false), `<-` (is_reply=true, source and
//!   destination swapped back) or `<>` (is_reply unset);
//! - lost events print as `EVENTS LOST: HUBBLE_RING_BUFFER CPU(0) 17`
//!   (no timestamp, exactly as upstream);
//! - ESC and CR in any printed text become `^[` and `\r` (terminal escape
//!   protection), colours are the same ANSI sequences as fatih/color's.

use std::{
    borrow::Cow,
    fmt::Write as _,
    io::{self, Write},
    str::FromStr,
};

use holonet_proto::{
    flow::{
        AuthType, DebugCapturePoint, Flow, LostEvent, LostEventSource, SocketTranslationPoint,
        TrafficDirection, Verdict, layer4, layer7,
    },
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
    relay::NodeState,
};

use crate::{
    fields::{process_name, processes},
    names,
    timefmt::{TimeFormat, write_time},
};

/// Output format, as `hubble observe -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// One line per flow (the default).
    #[default]
    Compact,
    /// A block of `KEY: value` lines per flow.
    Dict,
    /// Alias of `jsonpb`, as in hubble.
    Json,
    /// One protojson `GetFlowsResponse` per line.
    JsonPb,
    /// Aligned columns, printed when the stream ends.
    Table,
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "compact" => Self::Compact,
            "dict" => Self::Dict,
            "json" => Self::Json,
            "jsonpb" => Self::JsonPb,
            "table" | "tab" => Self::Table,
            other => {
                return Err(format!(
                    "invalid output format {other:?}: expected compact, dict, json, jsonpb or table"
                ));
            }
        })
    }
}

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrintOptions {
    /// The output format.
    pub format: OutputFormat,
    /// `--print-node-name`.
    pub node_name: bool,
    /// Use ANSI colours (never in table output, as in hubble).
    pub color: bool,
    /// `--ip-translation` (default true): names instead of IPs.
    pub ip_translation: bool,
    /// `--time-format`.
    pub time_format: TimeFormat,
}

impl Default for PrintOptions {
    fn default() -> Self {
        Self {
            format: OutputFormat::Compact,
            node_name: false,
            color: false,
            ip_translation: true,
            time_format: TimeFormat::StampMilli,
        }
    }
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[35m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";
const DICT_SEPARATOR: &str = "------------";

/// Hubble's terminal escaper: ESC becomes `^[`, CR becomes `\r`.
fn esc(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == 0x1b || b == b'\r') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace('\x1b', "^[").replace('\r', "\\r"))
}

/// Writes flows and lost events in one of hubble's formats.
#[derive(Debug)]
pub struct Printer<W: Write> {
    w: W,
    opts: PrintOptions,
    line: u64,
    buf: String,
    src: String,
    dst: String,
    json: Vec<u8>,
    rows: Vec<Vec<String>>,
}

impl<W: Write> Printer<W> {
    /// A printer writing to `w`.
    pub fn new(w: W, opts: PrintOptions) -> Self {
        Self {
            w,
            opts,
            line: 0,
            buf: String::with_capacity(256),
            src: String::new(),
            dst: String::new(),
            json: Vec::with_capacity(1024),
            rows: Vec::new(),
        }
    }

    /// Prints one response: flows and lost events go to the writer; node
    /// status events are not printed here (see [`node_status_message`],
    /// hubble sends them to stderr).
    pub fn write(&mut self, resp: &GetFlowsResponse) -> io::Result<()> {
        match (&resp.response_types, self.opts.format) {
            (
                Some(ResponseTypes::Flow(_) | ResponseTypes::LostEvents(_)),
                OutputFormat::Json | OutputFormat::JsonPb,
            ) => self.write_json(resp),
            (Some(ResponseTypes::Flow(flow)), _) => self.write_flow(flow),
            (Some(ResponseTypes::LostEvents(lost)), _) => self.write_lost(lost),
            _ => Ok(()),
        }
    }

    /// Flushes the writer (a table stays buffered until [`Printer::finish`]).
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Flushes buffered output (the table is only aligned at the end) and
    /// returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            write_table(&mut self.w, &rows)?;
        }
        self.w.flush()?;
        Ok(self.w)
    }

    fn write_json(&mut self, resp: &GetFlowsResponse) -> io::Result<()> {
        self.json.clear();
        // jsonpb is what `hubble observe --input-file` reads back: holonet's
        // own fields stay out of it.
        let stripped = match &resp.response_types {
            Some(ResponseTypes::Flow(flow))
                if self.opts.format == OutputFormat::JsonPb && flow.has_holonet_fields() =>
            {
                let mut copy = resp.clone();
                if let Some(ResponseTypes::Flow(flow)) = &mut copy.response_types {
                    flow.clear_holonet_fields();
                }
                Some(copy)
            }
            _ => None,
        };
        response_json(&mut self.json, stripped.as_ref().unwrap_or(resp))?;
        write_html_escaped(&mut self.w, &self.json)?;
        self.w.write_all(b"\n")?;
        self.line += 1;
        Ok(())
    }

    fn paint(&self, color: &'static str, s: &str, out: &mut String) {
        if self.opts.color && self.opts.format != OutputFormat::Table {
            out.push_str(color);
            out.push_str(s);
            out.push_str(RESET);
        } else {
            out.push_str(s);
        }
    }

    fn verdict(&self, flow: &Flow, out: &mut String) {
        let policy = flow
            .event_type
            .as_ref()
            .is_some_and(|e| e.r#type == names::EVENT_POLICY_VERDICT);
        let v = Verdict::try_from(flow.verdict);
        let name: Cow<'_, str> = match v {
            Ok(v) => Cow::Borrowed(v.as_str_name()),
            Err(_) => Cow::Owned(flow.verdict.to_string()),
        };
        let (text, color): (&str, Option<&'static str>) = match v {
            Ok(Verdict::Forwarded | Verdict::Redirected) => {
                (if policy { "ALLOWED" } else { &name }, Some(GREEN))
            }
            Ok(Verdict::Dropped | Verdict::Error) => {
                (if policy { "DENIED" } else { &name }, Some(RED))
            }
            Ok(Verdict::Audit) => (if policy { "AUDITED" } else { &name }, Some(YELLOW)),
            Ok(Verdict::Traced | Verdict::Translated) => (&name, Some(YELLOW)),
            _ => (&name, None),
        };
        match color {
            Some(c) => self.paint(c, text, out),
            None => out.push_str(text),
        }
    }

    fn summary(&self, flow: &Flow, out: &mut String) {
        if let Some(t) = &flow.ip_trace_id
            && t.trace_id > 0
        {
            let _ = write!(out, "IP Trace ID: {}; ", t.trace_id);
        }
        out.push_str(&esc(&flow.summary));
        match AuthType::try_from(flow.auth_type) {
            Ok(AuthType::Disabled) => {}
            Ok(AuthType::TestAlwaysFail) => {
                out.push_str("; ");
                self.paint(RED, AuthType::TestAlwaysFail.as_str_name(), out);
            }
            Ok(a) => {
                out.push_str("; ");
                self.paint(GREEN, a.as_str_name(), out);
            }
            Err(_) => {
                out.push_str("; ");
                self.paint(GREEN, &flow.auth_type.to_string(), out);
            }
        }
    }

    fn colored(&self) -> bool {
        self.opts.color && self.opts.format != OutputFormat::Table
    }

    fn identity(&self, id: u32, out: &mut String) {
        if self.colored() {
            out.push_str(MAGENTA);
        }
        match names::reserved_identity_name(id) {
            Some(n) => {
                out.push('(');
                out.push_str(n);
                out.push(')');
            }
            None => {
                let _ = write!(out, "(ID:{id})");
            }
        }
        if self.colored() {
            out.push_str(RESET);
        }
    }

    /// Fills `self.src` / `self.dst` (GetHostNames).
    fn host_names(&mut self, flow: &Flow) {
        let mut src = std::mem::take(&mut self.src);
        let mut dst = std::mem::take(&mut self.dst);
        src.clear();
        dst.clear();
        match &flow.ip {
            None => {
                if let Some(eth) = &flow.ethernet {
                    self.paint(CYAN, &esc(&eth.source), &mut src);
                    self.paint(CYAN, &esc(&eth.destination), &mut dst);
                }
            }
            Some(ip) => {
                let (sport, dport) = match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
                    Some(layer4::Protocol::Tcp(t)) => {
                        (Some(t.source_port), Some(t.destination_port))
                    }
                    Some(layer4::Protocol::Udp(u)) => {
                        (Some(u.source_port), Some(u.destination_port))
                    }
                    Some(layer4::Protocol::Sctp(s)) => {
                        (Some(s.source_port), Some(s.destination_port))
                    }
                    _ => (None, None),
                };
                let (mut sns, mut spod, mut ssvc) = ("", "", "");
                let (mut dns, mut dpod, mut dsvc) = ("", "", "");
                if let Some(e) = &flow.source {
                    sns = &e.namespace;
                    spod = &e.pod_name;
                }
                if let Some(e) = &flow.destination {
                    dns = &e.namespace;
                    dpod = &e.pod_name;
                }
                if let Some(s) = &flow.source_service {
                    sns = &s.namespace;
                    ssvc = &s.name;
                }
                if let Some(s) = &flow.destination_service {
                    dns = &s.namespace;
                    dsvc = &s.name;
                }
                self.hostname(
                    &ip.source,
                    sport,
                    sns,
                    spod,
                    ssvc,
                    &flow.source_names,
                    &mut src,
                );
                self.hostname(
                    &ip.destination,
                    dport,
                    dns,
                    dpod,
                    dsvc,
                    &flow.destination_names,
                    &mut dst,
                );
            }
        }
        self.src = src;
        self.dst = dst;
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors hubble's Hostname signature"
    )]
    fn hostname(
        &self,
        ip: &str,
        port: Option<u32>,
        ns: &str,
        pod: &str,
        svc: &str,
        names: &[String],
        out: &mut String,
    ) {
        let colored = self.colored();
        if colored {
            out.push_str(CYAN);
        }
        let start = out.len();
        let name = if pod.is_empty() { svc } else { pod };
        if self.opts.ip_translation && !name.is_empty() {
            // Go's path.Join omits the slash when the namespace is empty.
            if !ns.is_empty() {
                out.push_str(&esc(ns));
                out.push('/');
            }
            out.push_str(&esc(name));
        } else if self.opts.ip_translation && !names.is_empty() {
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&esc(n));
            }
        } else {
            out.push_str(&esc(ip));
        }
        if let Some(p) = port.filter(|p| *p != 0) {
            // net.JoinHostPort brackets hosts containing a colon.
            if out[start..].contains(':') {
                out.insert(start, '[');
                out.push(']');
            }
            out.push(':');
            if colored {
                out.push_str(YELLOW);
            }
            let _ = write!(out, "{p}");
            if colored {
                out.push_str(RESET);
            }
        }
        if colored {
            out.push_str(RESET);
        }
    }

    fn write_flow(&mut self, flow: &Flow) -> io::Result<()> {
        self.host_names(flow);
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        match self.opts.format {
            OutputFormat::Compact => {
                write_time(&mut buf, flow.time.as_ref(), self.opts.time_format);
                if self.opts.node_name {
                    let _ = write!(buf, " [{}]", esc(&flow.node_name));
                }
                buf.push_str(": ");
                let src_id = flow.source.as_ref().map_or(0, |e| e.identity);
                let dst_id = flow.destination.as_ref().map_or(0, |e| e.identity);
                let (arrow, swap) = match &flow.is_reply {
                    None => ("<>", false),
                    Some(r) if r.value => ("<-", true),
                    Some(_) => ("->", false),
                };
                let src_proc = flow.holonet_source_process.as_ref();
                let dst_proc = flow.holonet_destination_process.as_ref();
                let (a, a_id, a_proc, b, b_id, b_proc) = if swap {
                    (&self.dst, dst_id, dst_proc, &self.src, src_id, src_proc)
                } else {
                    (&self.src, src_id, src_proc, &self.dst, dst_id, dst_proc)
                };
                buf.push_str(a);
                buf.push(' ');
                self.identity(a_id, &mut buf);
                if let Some(p) = a_proc {
                    buf.push(' ');
                    buf.push_str(&process_name(p));
                }
                buf.push(' ');
                buf.push_str(arrow);
                buf.push(' ');
                buf.push_str(b);
                buf.push(' ');
                self.identity(b_id, &mut buf);
                if let Some(p) = b_proc {
                    buf.push(' ');
                    buf.push_str(&process_name(p));
                }
                buf.push(' ');
                flow_type(flow, &mut buf);
                buf.push(' ');
                self.verdict(flow, &mut buf);
                buf.push_str(" (");
                self.summary(flow, &mut buf);
                buf.push_str(")\n");
            }
            OutputFormat::Dict => {
                if self.line != 0 {
                    buf.push_str(DICT_SEPARATOR);
                    buf.push('\n');
                }
                buf.push_str("  TIMESTAMP: ");
                write_time(&mut buf, flow.time.as_ref(), self.opts.time_format);
                buf.push('\n');
                if self.opts.node_name {
                    let _ = writeln!(buf, "       NODE: {}", esc(&flow.node_name));
                }
                let _ = write!(
                    buf,
                    "     SOURCE: {}\nDESTINATION: {}\n       TYPE: ",
                    self.src, self.dst
                );
                flow_type(flow, &mut buf);
                if let Some((source, destination)) = processes(flow) {
                    let _ = write!(buf, "\n  PROCESSES: {source} -> {destination}");
                }
                buf.push_str("\n    VERDICT: ");
                self.verdict(flow, &mut buf);
                buf.push_str("\n    SUMMARY: ");
                self.summary(flow, &mut buf);
                buf.push('\n');
            }
            OutputFormat::Table => {
                let mut row = Vec::with_capacity(7);
                let mut ts = String::new();
                write_time(&mut ts, flow.time.as_ref(), self.opts.time_format);
                row.push(ts);
                if self.opts.node_name {
                    row.push(esc(&flow.node_name).into_owned());
                }
                row.push(self.src.clone());
                row.push(self.dst.clone());
                let mut t = String::new();
                flow_type(flow, &mut t);
                row.push(t);
                let mut v = String::new();
                self.verdict(flow, &mut v);
                row.push(v);
                let mut s = String::new();
                self.summary(flow, &mut s);
                row.push(s);
                self.push_row(row);
            }
            OutputFormat::Json | OutputFormat::JsonPb => {}
        }
        let res = self.w.write_all(buf.as_bytes());
        self.buf = buf;
        self.line += 1;
        res
    }

    fn push_row(&mut self, row: Vec<String>) {
        if self.line == 0 {
            let mut header = vec!["TIMESTAMP".to_owned()];
            if self.opts.node_name {
                header.push("NODE".to_owned());
            }
            for h in ["SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"] {
                header.push(h.to_owned());
            }
            self.rows.push(header);
        }
        self.rows.push(row);
    }

    fn write_lost(&mut self, lost: &LostEvent) -> io::Result<()> {
        let source = LostEventSource::try_from(lost.source)
            .map_or_else(|_| lost.source.to_string(), |s| s.as_str_name().to_owned());
        let cpu = lost.cpu.as_ref().map_or(0, |c| c.value);
        let n = lost.num_events_lost;
        match self.opts.format {
            OutputFormat::Compact => {
                writeln!(self.w, "EVENTS LOST: {source} CPU({cpu}) {n}")?;
            }
            OutputFormat::Dict => {
                let mut buf = String::new();
                if self.line != 0 {
                    buf.push_str(DICT_SEPARATOR);
                    buf.push('\n');
                }
                buf.push_str("  TIMESTAMP: \n");
                if self.opts.node_name {
                    buf.push_str("       NODE: \n");
                }
                let _ = write!(
                    buf,
                    "     SOURCE: {source}\n       TYPE: EVENTS LOST\n    VERDICT: \n    SUMMARY: CPU({cpu}) - {n}\n"
                );
                self.w.write_all(buf.as_bytes())?;
            }
            OutputFormat::Table => {
                let mut row = vec![String::new()];
                if self.opts.node_name {
                    row.push(String::new());
                }
                row.extend([
                    source,
                    String::new(),
                    "EVENTS LOST".to_owned(),
                    String::new(),
                    format!("CPU({cpu}) - {n}"),
                ]);
                self.push_row(row);
            }
            OutputFormat::Json | OutputFormat::JsonPb => {}
        }
        self.line += 1;
        Ok(())
    }
}

/// hubble's message for a relay node status event (printed to stderr), or
/// `None` when hubble would not print it (informational events are only
/// shown in debug mode, and never for `-o json` here).
pub fn node_status_message(
    resp: &GetFlowsResponse,
    opts: &PrintOptions,
    debug: bool,
) -> Option<String> {
    let Some(ResponseTypes::NodeStatus(s)) = &resp.response_types else {
        return None;
    };
    let state = NodeState::try_from(s.state_change).ok();
    if !debug
        && !matches!(
            state,
            Some(NodeState::NodeError | NodeState::NodeUnavailable)
        )
    {
        return None;
    }
    if matches!(opts.format, OutputFormat::Json | OutputFormat::JsonPb) {
        let mut v = Vec::new();
        response_json(&mut v, resp).ok()?;
        let mut out = Vec::new();
        write_html_escaped(&mut out, &v).ok()?;
        return String::from_utf8(out).ok();
    }
    let mut ts = String::new();
    write_time(&mut ts, resp.time.as_ref(), opts.time_format);
    let prefix = format!("{ts} [{}]", resp.node_name);
    let n = s.node_names.len();
    let names = join_with_cut_off(&s.node_names, ", ", 50);
    let msg = match state {
        Some(NodeState::NodeConnected) => {
            format!("{prefix}: Receiving flows from {n} nodes: {names}")
        }
        Some(NodeState::NodeUnavailable) => format!("{prefix}: {n} nodes are unavailable: {names}"),
        Some(NodeState::NodeGone) => format!("{prefix}: {n} nodes removed from cluster: {names}"),
        Some(NodeState::NodeError) => {
            format!("{prefix}: Error {:?} on {n} nodes: {names}", s.message)
        }
        _ => format!("{prefix}: unknown node status event: {s:?}"),
    };
    Some(esc(&msg).into_owned())
}

fn join_with_cut_off(elems: &[String], sep: &str, target: usize) -> String {
    let mut len = 0;
    let mut end = elems.len();
    for (i, e) in elems.iter().enumerate() {
        len += e.len() + sep.len();
        if len > target && i > 0 {
            end = i;
            break;
        }
    }
    let joined = elems[..end].join(sep);
    let omitted = elems.len() - end;
    if omitted == 0 {
        joined
    } else {
        format!("{joined} (and {omitted} more)")
    }
}

/// hubble's `GetFlowType`: the TYPE column.
pub fn flow_type(flow: &Flow, out: &mut String) {
    if let Some(l7) = &flow.l7 {
        let ty = holonet_proto::flow::L7FlowType::try_from(l7.r#type).map_or_else(
            |_| l7.r#type.to_string(),
            |t| t.as_str_name().to_lowercase(),
        );
        match &l7.record {
            Some(layer7::Record::Http(_)) => {
                let _ = write!(out, "http-{ty}");
            }
            Some(layer7::Record::Dns(d)) => {
                let _ = write!(out, "dns-{ty} {}", esc(&d.observation_source));
            }
            None => {
                let _ = write!(out, "l7-{ty}");
            }
        }
        return;
    }
    let et = flow.event_type.as_ref();
    let ty = et.map_or(0, |e| e.r#type);
    let sub = et.map_or(0, |e| e.sub_type);
    // Go converts the sub-type with uint8(), i.e. modulo 256.
    let sub8 = (sub & 0xff) as u8;
    match ty {
        names::EVENT_TRACE => match names::trace_point_name(sub8) {
            Some(n) => out.push_str(n),
            None => {
                let _ = write!(out, "{sub8}");
            }
        },
        names::EVENT_DROP => match names::drop_reason_text(sub8) {
            Some(n) => out.push_str(n),
            None => {
                let _ = write!(out, "{sub8}");
            }
        },
        names::EVENT_POLICY_VERDICT => {
            let dir = TrafficDirection::try_from(flow.traffic_direction).map_or_else(
                |_| flow.traffic_direction.to_string(),
                |d| d.as_str_name().to_owned(),
            );
            let _ = write!(
                out,
                "policy-verdict:{} {dir}",
                names::policy_match_type_name(flow.policy_match_type)
            );
        }
        names::EVENT_CAPTURE => match DebugCapturePoint::try_from(flow.debug_capture_point) {
            Ok(p) => out.push_str(p.as_str_name()),
            Err(_) => {
                let _ = write!(out, "{}", flow.debug_capture_point);
            }
        },
        names::EVENT_TRACE_SOCK => match SocketTranslationPoint::try_from(flow.sock_xlate_point) {
            Ok(SocketTranslationPoint::SockXlatePointPostDirectionFwd) => {
                out.push_str("post-xlate-fwd")
            }
            Ok(SocketTranslationPoint::SockXlatePointPostDirectionRev) => {
                out.push_str("post-xlate-rev")
            }
            Ok(SocketTranslationPoint::SockXlatePointPreDirectionFwd) => {
                out.push_str("pre-xlate-fwd")
            }
            Ok(SocketTranslationPoint::SockXlatePointPreDirectionRev) => {
                out.push_str("pre-xlate-rev")
            }
            Ok(p) => out.push_str(p.as_str_name()),
            Err(_) => {
                let _ = write!(out, "{}", flow.sock_xlate_point);
            }
        },
        _ => out.push_str("UNKNOWN"),
    }
}

/// Serialises a `GetFlowsResponse` as Go's protojson does. pbjson writes
/// a oneof after the other fields, Go writes fields in declaration order
/// (the oneof first), so the wrapper is written here and only its members
/// go through serde.
pub fn response_json(out: &mut Vec<u8>, resp: &GetFlowsResponse) -> io::Result<()> {
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, k: &str| {
        out.extend_from_slice(if first { b"{\"" } else { b",\"" });
        first = false;
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
    };
    match &resp.response_types {
        Some(ResponseTypes::Flow(f)) => {
            key(out, "flow");
            serde_json::to_writer(&mut *out, f).map_err(io::Error::other)?;
        }
        Some(ResponseTypes::NodeStatus(n)) => {
            key(out, "node_status");
            serde_json::to_writer(&mut *out, n).map_err(io::Error::other)?;
        }
        Some(ResponseTypes::LostEvents(l)) => {
            key(out, "lost_events");
            serde_json::to_writer(&mut *out, l).map_err(io::Error::other)?;
        }
        None => {}
    }
    if !resp.node_name.is_empty() {
        key(out, "node_name");
        serde_json::to_writer(&mut *out, &resp.node_name).map_err(io::Error::other)?;
    }
    if let Some(t) = &resp.time {
        key(out, "time");
        serde_json::to_writer(&mut *out, t).map_err(io::Error::other)?;
    }
    if first {
        out.extend_from_slice(b"{");
    }
    out.extend_from_slice(b"}");
    Ok(())
}

/// Writes JSON the way Go's `json.Encoder` does after compacting:
/// `<`, `>`, `&`, U+2028 and U+2029 escaped.
fn write_html_escaped(w: &mut impl Write, json: &[u8]) -> io::Result<()> {
    let mut start = 0;
    let mut i = 0;
    while i < json.len() {
        let rep: Option<&[u8]> = match json[i] {
            b'<' => Some(b"\\u003c"),
            b'>' => Some(b"\\u003e"),
            b'&' => Some(b"\\u0026"),
            0xE2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                if json[i + 2] == 0xA8 {
                    Some(b"\\u2028")
                } else {
                    Some(b"\\u2029")
                }
            }
            _ => None,
        };
        if let Some(rep) = rep {
            w.write_all(&json[start..i])?;
            w.write_all(rep)?;
            i += if json[i] == 0xE2 { 3 } else { 1 };
            start = i;
        } else {
            i += 1;
        }
    }
    w.write_all(&json[start..])
}

/// Go's `text/tabwriter` with minwidth 2, tabwidth 0, padding 3, padchar
/// ' ', flags 0: every cell but the last of a line is padded to the
/// column's widest cell plus 3.
fn write_table(w: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![2usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count() + 3);
        }
    }
    let mut line = String::new();
    for row in rows {
        line.clear();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
