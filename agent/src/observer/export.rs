//! Recording flows to a file: one `GetFlowsResponse` per line in protojson,
//! as Hubble's exporter and `hubble observe -o jsonpb` write them, so the
//! files work with `hubble observe --input-file` and with holonet's replay.
//!
//! Files rotate by size: when the current file would grow past the limit it
//! is renamed to `<stem>-<UTC time>.<ext>` and a new one is started; only the
//! newest backups are kept. Each line is written whole, so a crash can at
//! worst cut the last line, which readers skip.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use holonet_proto::observer::get_flows_response::ResponseTypes;

use super::store::{FlowStore, Follower, StoredEvent};

/// Where and how to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportConfig {
    /// The current file.
    pub path: PathBuf,
    /// Rotate before the file grows past this many bytes.
    pub max_size_bytes: u64,
    /// Rotated files to keep (older ones are deleted).
    pub max_backups: usize,
}

/// Writes lines to the current file and rotates it.
#[derive(Debug)]
pub struct RotatingWriter {
    config: ExportConfig,
    file: BufWriter<File>,
    size: u64,
}

fn open_append(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((BufWriter::new(file), size))
}

impl RotatingWriter {
    /// Opens (appending to) the configured file.
    pub fn open(config: ExportConfig) -> io::Result<Self> {
        let (file, size) = open_append(&config.path)?;
        Ok(Self { config, file, size })
    }

    fn backup_name(&self) -> PathBuf {
        let path = &self.config.path;
        let stem = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%S%.3f");
        let name = match ext {
            Some(ext) => format!("{stem}-{stamp}.{ext}"),
            None => format!("{stem}-{stamp}"),
        };
        path.with_file_name(name)
    }

    /// Rotated files of this export, oldest first.
    pub fn backups(&self) -> io::Result<Vec<PathBuf>> {
        let path = &self.config.path;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let stem = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let prefix = format!("{stem}-");
        let mut found: Vec<PathBuf> = fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p != path
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect();
        // The timestamp in the name sorts chronologically.
        found.sort();
        Ok(found)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let backup = self.backup_name();
        fs::rename(&self.config.path, &backup)?;
        let (file, size) = open_append(&self.config.path)?;
        self.file = file;
        self.size = size;
        let backups = self.backups()?;
        let excess = backups.len().saturating_sub(self.config.max_backups);
        for old in &backups[..excess] {
            fs::remove_file(old)?;
        }
        Ok(())
    }

    /// Writes one line (a newline is added), rotating first if needed.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.config.max_size_bytes {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The protojson line for a stored event, with the fields in the order Go's
/// protojson writes them (the flow first), as Hubble's exporter does.
/// holonet's own process fields are left out (see
/// [`holonet_proto::flow::Flow::clear_holonet_fields`]).
pub fn line(event: &StoredEvent, node_name: &str) -> io::Result<String> {
    let mut response = event.to_response(node_name);
    if let Some(ResponseTypes::Flow(flow)) = &mut response.response_types {
        flow.clear_holonet_fields();
    }
    let mut out = Vec::with_capacity(1024);
    holonet_flows::printer::response_json(&mut out, &response)?;
    String::from_utf8(out).map_err(io::Error::other)
}

/// Records every event appended to `store` from now on until the store goes
/// away; returns the first I/O error.
pub async fn run(store: Arc<FlowStore>, config: ExportConfig, node_name: String) -> io::Result<()> {
    let mut writer = RotatingWriter::open(config)?;
    let from = store.next_seq();
    let mut follower = Follower::new(store, from);
    while let Some(range) = follower.next_batch(4096).await {
        if range.overwritten > 0 {
            log::warn!(
                "flow recording fell behind: {} events were overwritten before they could be written",
                range.overwritten
            );
        }
        for event in &range.events {
            writer.write_line(&line(event, &node_name)?)?;
        }
        writer.flush()?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use holonet_proto::flow::Flow;

    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "holonet-export-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest_backups() {
        let dir = temp_dir("rotate");
        let config = ExportConfig {
            path: dir.join("events.log"),
            max_size_bytes: 100,
            max_backups: 2,
        };
        let mut w = RotatingWriter::open(config).unwrap();
        for i in 0..20 {
            w.write_line(&format!(
                "{{\"line\":{i:04},\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}}"
            ))
            .unwrap();
            // Distinct backup timestamps.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        w.flush().unwrap();
        let backups = w.backups().unwrap();
        assert_eq!(backups.len(), 2, "{backups:?}");
        let current = fs::read_to_string(dir.join("events.log")).unwrap();
        assert!(current.len() <= 100, "{}", current.len());
        assert!(current.ends_with("\"line\":0019,\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}\n"));
        for b in &backups {
            let text = fs::read_to_string(b).unwrap();
            assert!(text.lines().all(|l| l.starts_with("{\"line\":")), "{text}");
            assert!(b.file_name().unwrap().to_str().unwrap().ends_with(".log"));
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lines_are_hubble_get_flows_responses() {
        let flow = Flow {
            node_name: "node-1".into(),
            time: Some(holonet_proto::wkt::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        };
        let text = line(&StoredEvent::from(flow), "node-1").unwrap();
        assert_eq!(
            text,
            r#"{"flow":{"time":"1970-01-01T00:00:01Z","node_name":"node-1"},"node_name":"node-1","time":"1970-01-01T00:00:01Z"}"#
        );
        let back: holonet_proto::observer::GetFlowsResponse = serde_json::from_str(&text).unwrap();
        assert_eq!(back.node_name, "node-1");
    }
}
