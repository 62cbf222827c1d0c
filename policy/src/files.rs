//! Reading policy files and directories from disk.
//!
//! Exists for the CLI and the agent; it is the crate's only I/O and is kept
//! apart so the engine itself stays pure. Directories are read recursively
//! (`*.yaml`, `*.yml`, `*.json`), in sorted order for deterministic output.

use std::fs;
use std::path::{Path, PathBuf};

use crate::diag::SourceFile;
use crate::yaml::MAX_SOURCE_BYTES;

/// Why a path could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ReadError {
    /// The path.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

fn collect(path: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), ReadError> {
    let err = |m: String| ReadError {
        path: path.display().to_string(),
        message: m,
    };
    let meta = fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.is_dir() {
        if depth > 16 {
            return Err(err("directories nested too deeply".into()));
        }
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .map_err(|e| err(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let is_dir = p.is_dir();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if is_dir || matches!(ext, "yaml" | "yml" | "json") {
                collect(&p, depth + 1, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Reads every file named in `paths` (directories recursively).
pub fn read_sources<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<SourceFile>, ReadError> {
    let mut files = Vec::new();
    for p in paths {
        collect(p.as_ref(), 0, &mut files)?;
    }
    let mut out = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let len = fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        if len > MAX_SOURCE_BYTES as u64 {
            return Err(ReadError {
                path: name,
                message: format!("file is larger than {MAX_SOURCE_BYTES} bytes"),
            });
        }
        let bytes = fs::read(&f).map_err(|e| ReadError {
            path: name.clone(),
            message: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| ReadError {
            path: name.clone(),
            message: "file is not UTF-8".into(),
        })?;
        out.push(SourceFile { name, text });
    }
    Ok(out)
}
