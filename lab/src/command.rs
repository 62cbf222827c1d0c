//! Running the system tools (`ip`, `sysctl`-like writes) the lab is built with.

use std::{
    ffi::OsStr,
    path::Path,
    process::{Command, Output},
};

/// A command failed to start or exited unsuccessfully.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started at all.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// The program ran and reported failure.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
}

impl CommandError {
    /// The stderr text of a command that ran and failed, for callers that
    /// treat some failures (like "File exists") as an answer.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            Self::Failed { stderr, .. } => Some(stderr),
            Self::Spawn { .. } => None,
        }
    }
}

/// Finds iproute2's `ip`, which lives in sbin directories that are not on
/// every PATH.
pub(crate) fn ip_program() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("ip")
}

fn describe(program: &str, args: &[&OsStr]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `program args...` to completion and returns its output, or an error
/// naming the command and carrying its stderr.
pub fn run_command<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Output, CommandError> {
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    let output = Command::new(program)
        .args(&args)
        .output()
        .map_err(|source| CommandError::Spawn {
            command: describe(program, &args),
            source,
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(CommandError::Failed {
            command: describe(program, &args),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Runs `ip args...`.
pub(crate) fn ip<S: AsRef<OsStr>>(args: &[S]) -> Result<Output, CommandError> {
    run_command(ip_program(), args)
}
