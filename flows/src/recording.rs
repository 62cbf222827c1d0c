//! Streaming reader for flow recordings: one JSON object per line, as
//! `hubble observe -o jsonpb` and Hubble's exporter write them.
//!
//! Each line may be a `GetFlowsResponse`, an `observer.ExportEvent` (same
//! shape; its agent and debug events are counted and skipped) or, as the
//! legacy `hubble observe -o json` wrote, a bare `Flow` object. Blank lines
//! are ignored. Garbage or truncated lines are skipped and counted, with the
//! line numbers of the first few kept for the report. A line longer than
//! the limit is not buffered: the reader yields
//! [`RecordingError::LineTooLong`], skips to the next newline and carries on
//! if the caller keeps iterating.
//!
//! The reader streams: memory use is one line buffer, whatever the file size.

use std::io::{self, BufRead, Read as _};

use holonet_proto::{
    flow::Flow,
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
};

/// Default longest line accepted (1 MiB; hubble's own reader stops at 64 KiB).
pub const DEFAULT_MAX_LINE_LEN: usize = 1 << 20;

/// How many skipped lines are remembered individually.
pub const MAX_REPORTED_SKIPS: usize = 5;

/// A recording could not be read further (or a line was refused).
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// Reading failed.
    #[error("line {line}: read error: {source}")]
    Io {
        /// 1-based line number being read.
        line: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A line exceeded the limit; it was skipped without being buffered.
    #[error(
        "line {line} is longer than {limit} bytes; refusing to buffer it (is this a flow recording?)"
    )]
    LineTooLong {
        /// 1-based line number.
        line: u64,
        /// The limit in bytes.
        limit: usize,
    },
}

/// Why one line is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The bytes are not UTF-8.
    #[error("not valid UTF-8")]
    Utf8,
    /// The line does not start with a JSON object.
    #[error("not a JSON object")]
    NotObject,
    /// JSON syntax or type error (for example a truncated line).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// Valid JSON that holds no flow, lost event or node status.
    #[error("JSON object without a flow, lost event or node status")]
    NotAnEvent,
}

/// What one line holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A flow, lost event or node status event (boxed: the message is
    /// over a kilobyte, and moving it around showed up in profiles).
    Event(Box<GetFlowsResponse>),
    /// An ExportEvent carrying an agent or debug event (not printed).
    Other,
    /// An empty or whitespace-only line.
    Blank,
}

/// Parses one recording line. Never panics, whatever the input.
pub fn parse_line(line: &[u8]) -> Result<Line, LineError> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(Line::Blank);
    }
    if line[0] != b'{' {
        return Err(if std::str::from_utf8(line).is_err() {
            LineError::Utf8
        } else {
            LineError::NotObject
        });
    }
    // Validating UTF-8 once and parsing from `str` is much faster than
    // letting serde_json validate every string.
    let text = std::str::from_utf8(line).map_err(|_| LineError::Utf8)?;
    let resp: Box<GetFlowsResponse> = match crate::fastjson::from_str(text) {
        Ok(r) => r,
        // Re-parse the slow way for a precise message.
        Err(_) => serde_json::from_str(text).map_err(|e| LineError::Json(e.to_string()))?,
    };
    if resp.response_types.is_some() {
        return Ok(Line::Event(resp));
    }
    // No oneof member: an ExportEvent with an agent/debug event, a bare
    // legacy Flow, or an object that is not an event at all.
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| LineError::Json(e.to_string()))?;
    if map.contains_key("agent_event") || map.contains_key("debug_event") {
        return Ok(Line::Other);
    }
    if map.keys().all(|k| k == "node_name" || k == "time") {
        return Err(LineError::NotAnEvent);
    }
    let flow: Flow = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| LineError::Json(e.to_string()))?;
    if flow == Flow::default() {
        return Err(LineError::NotAnEvent);
    }
    Ok(Line::Event(Box::new(GetFlowsResponse {
        node_name: flow.node_name.clone(),
        time: flow.time,
        response_types: Some(ResponseTypes::Flow(flow)),
    })))
}

/// A skipped line, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    /// 1-based line number.
    pub line: u64,
    /// Why it was skipped.
    pub reason: String,
}

/// Counters kept while reading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Lines read (including blank and skipped ones).
    pub lines: u64,
    /// Events yielded.
    pub events: u64,
    /// Agent/debug events skipped.
    pub other_events: u64,
    /// Garbage, truncated or over-long lines skipped.
    pub skipped: u64,
    /// The first [`MAX_REPORTED_SKIPS`] skipped lines.
    pub first_skipped: Vec<SkippedLine>,
}

impl ReadStats {
    fn skip(&mut self, line: u64, reason: String) {
        self.skipped += 1;
        if self.first_skipped.len() < MAX_REPORTED_SKIPS {
            self.first_skipped.push(SkippedLine { line, reason });
        }
    }

    /// A one-line summary of skipped lines, `None` when nothing was skipped.
    pub fn skipped_summary(&self) -> Option<String> {
        if self.skipped == 0 {
            return None;
        }
        let mut s = format!("skipped {} unreadable line(s): ", self.skipped);
        for (i, l) in self.first_skipped.iter().enumerate() {
            if i > 0 {
                s.push_str("; ");
            }
            s.push_str(&format!("line {}: {}", l.line, l.reason));
        }
        if self.skipped > self.first_skipped.len() as u64 {
            s.push_str("; …");
        }
        Some(s)
    }
}

/// Iterates over the events of a recording, one line at a time.
#[derive(Debug)]
pub struct RecordingReader<R> {
    inner: R,
    buf: Vec<u8>,
    line: u64,
    max_line_len: usize,
    stats: ReadStats,
    done: bool,
}

enum Read {
    Line,
    TooLong,
    Eof,
}

impl<R: BufRead> RecordingReader<R> {
    /// A reader with the default line limit.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(4096),
            line: 0,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            stats: ReadStats::default(),
            done: false,
        }
    }

    /// Sets the longest line accepted, in bytes.
    pub fn with_max_line_len(mut self, max: usize) -> Self {
        self.max_line_len = max;
        self
    }

    /// Counters so far (final once the iterator returned `None`).
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Reads one line into `self.buf` without ever holding more than the
    /// limit; an over-long line is drained to its newline.
    fn read_line(&mut self) -> io::Result<Read> {
        self.buf.clear();
        let limit = u64::try_from(self.max_line_len).unwrap_or(u64::MAX);
        // `read_until` finds the newline with memchr; `take` bounds memory.
        let n = read_until_retrying(
            (&mut self.inner).take(limit.saturating_add(1)),
            &mut self.buf,
        )?;
        if n == 0 {
            return Ok(Read::Eof);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            return Ok(Read::Line);
        }
        if self.buf.len() <= self.max_line_len {
            // Last line without a newline.
            return Ok(Read::Line);
        }
        // Too long: discard the rest of the line in bounded chunks.
        loop {
            self.buf.clear();
            let n = read_until_retrying((&mut self.inner).take(64 * 1024), &mut self.buf)?;
            if n == 0 || self.buf.last() == Some(&b'\n') {
                self.buf.clear();
                return Ok(Read::TooLong);
            }
        }
    }
}

fn read_until_retrying(mut r: impl BufRead, buf: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        match r.read_until(b'\n', buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl<R: BufRead> Iterator for RecordingReader<R> {
    type Item = Result<Box<GetFlowsResponse>, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let read = match self.read_line() {
                Ok(r) => r,
                Err(source) => {
                    self.done = true;
                    return Some(Err(RecordingError::Io {
                        line: self.line + 1,
                        source,
                    }));
                }
            };
            match read {
                Read::Eof => self.done = true,
                Read::TooLong => {
                    self.line += 1;
                    self.stats.lines += 1;
                    self.stats.skip(
                        self.line,
                        format!("longer than {} bytes", self.max_line_len),
                    );
                    return Some(Err(RecordingError::LineTooLong {
                        line: self.line,
                        limit: self.max_line_len,
                    }));
                }
                Read::Line => {
                    self.line += 1;
                    self.stats.lines += 1;
                    match parse_line(&self.buf) {
                        Ok(Line::Event(ev)) => {
                            self.stats.events += 1;
                            return Some(Ok(ev));
                        }
                        Ok(Line::Other) => self.stats.other_events += 1,
                        Ok(Line::Blank) => {}
                        Err(e) => self.stats.skip(self.line, e.to_string()),
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use holonet_proto::flow::{Verdict, layer4};

    use super::*;
    use crate::printer::{OutputFormat, PrintOptions, Printer};

    const LINE: &str = r#"{"flow":{"time":"2025-03-12T09:41:07.516348112Z","verdict":"FORWARDED","IP":{"source":"10.244.1.23","destination":"10.244.2.17","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":8080,"destination_port":41234}},"node_name":"prod/worker-1","Summary":"x"},"node_name":"prod/worker-1","time":"2025-03-12T09:41:07.516348112Z"}"#;

    fn read_all(input: &str) -> (Vec<GetFlowsResponse>, Vec<String>, ReadStats) {
        let mut r =
            RecordingReader::new(Cursor::new(input.as_bytes().to_vec())).with_max_line_len(2048);
        let mut ok = Vec::new();
        let mut errs = Vec::new();
        for item in r.by_ref() {
            match item {
                Ok(e) => ok.push(*e),
                Err(e) => errs.push(e.to_string()),
            }
        }
        (ok, errs, r.stats().clone())
    }

    #[test]
    fn round_trips_through_the_jsonpb_printer() {
        let (events, errs, _) = read_all(&format!("{LINE}\n{LINE}\n"));
        assert!(errs.is_empty());
        assert_eq!(events.len(), 2);
        let mut p = Printer::new(
            Vec::new(),
            PrintOptions {
                format: OutputFormat::JsonPb,
                ..Default::default()
            },
        );
        for e in &events {
            p.write(e).unwrap();
        }
        let written = String::from_utf8(p.finish().unwrap()).unwrap();
        assert_eq!(written, format!("{LINE}\n{LINE}\n"));
        let (again, _, _) = read_all(&written);
        assert_eq!(again, events);
        let Some(ResponseTypes::Flow(f)) = &events[0].response_types else {
            panic!("flow")
        };
        assert_eq!(f.verdict(), Verdict::Forwarded);
        assert!(matches!(
            f.l4.as_ref().and_then(|l| l.protocol.as_ref()),
            Some(layer4::Protocol::Tcp(_))
        ));
    }

    #[test]
    fn garbage_and_truncated_lines_are_skipped_and_counted() {
        let truncated = &LINE[..LINE.len() / 2];
        let input = format!(
            "{LINE}\n\nnot json\n{truncated}\n{{\"node_name\":\"x\"}}\n\u{fffd}\u{fffd}\n{{\"agent_event\":{{\"type\":\"AGENT_STARTED\"}},\"node_name\":\"n\"}}\n[1,2]\n{{}}\n{LINE}\r\n{truncated}"
        );
        let (events, errs, stats) = read_all(&input);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(events.len(), 2);
        assert_eq!(stats.lines, 11);
        assert_eq!(stats.other_events, 1);
        assert_eq!(stats.skipped, 7);
        let lines: Vec<u64> = stats.first_skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 8]);
        assert!(
            stats.first_skipped[1].reason.starts_with("invalid JSON"),
            "{:?}",
            stats.first_skipped[1]
        );
        let summary = stats.skipped_summary().unwrap();
        assert!(
            summary.starts_with("skipped 7 unreadable line(s): line 3: not a JSON object"),
            "{summary}"
        );
        assert!(summary.ends_with('…'));
    }

    #[test]
    fn legacy_bare_flows_are_accepted() {
        let bare =
            r#"{"time":"2025-03-12T09:41:07Z","verdict":"DROPPED","node_name":"n1","Summary":"s"}"#;
        let (events, _, stats) = read_all(bare);
        assert_eq!(stats.skipped, 0);
        assert_eq!(events[0].node_name, "n1");
        let Some(ResponseTypes::Flow(f)) = &events[0].response_types else {
            panic!("flow")
        };
        assert_eq!(f.verdict(), Verdict::Dropped);
        assert_eq!(events[0].time, f.time);
    }

    #[test]
    fn overlong_lines_are_refused_without_buffering() {
        let long = format!("{{\"flow\":{{\"Summary\":\"{}\"}}}}", "a".repeat(10_000));
        let input = format!("{long}\n{LINE}\n{long}");
        let (events, errs, stats) = read_all(&input);
        assert_eq!(events.len(), 1, "the line after a long one is still read");
        assert_eq!(
            errs,
            vec![
                "line 1 is longer than 2048 bytes; refusing to buffer it (is this a flow recording?)",
                "line 3 is longer than 2048 bytes; refusing to buffer it (is this a flow recording?)",
            ]
        );
        assert_eq!(stats.skipped, 2);
        // A tiny BufReader capacity exercises lines split over many reads.
        let r = RecordingReader::new(io::BufReader::with_capacity(
            7,
            Cursor::new(format!("{LINE}\n{LINE}")),
        ));
        assert_eq!(r.filter(Result::is_ok).count(), 2);
    }

    #[test]
    fn read_errors_end_the_stream() {
        struct Failing;
        impl io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut r = RecordingReader::new(io::BufReader::new(Failing));
        assert!(matches!(
            r.next(),
            Some(Err(RecordingError::Io { line: 1, .. }))
        ));
        assert!(r.next().is_none());
    }
}
