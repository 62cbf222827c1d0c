//! Child processes that run inside pods and must not outlive the lab.

use std::{
    io::Read,
    process::{Child, Command, ExitStatus, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// A child process that is terminated (SIGTERM, then SIGKILL) and reaped when
/// dropped.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
}

impl ChildGuard {
    /// Spawns `command`, naming it for error messages.
    pub fn spawn(name: &str, mut command: Command) -> std::io::Result<Self> {
        let child = command.spawn()?;
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
        })
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Process id of the child.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Returns the exit status if the child has already exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child.try_wait(),
            None => Ok(None),
        }
    }

    /// Stops the child now: SIGTERM, a short grace period, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(raw) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits for `child` to exit, at most `limit`; a child still running then
/// is killed and the error says so (a test must fail, not hang).
pub fn wait_within(child: &mut Child, limit: Duration) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "process {} still ran after {limit:?} and was killed",
                    child.id()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for process {}: {e}", child.id())),
        }
    }
}

/// Runs `command` to completion like [`Command::output`], but for at most
/// `limit`: on time-out the command is killed and the error carries what it
/// printed so far.
pub fn output_within(command: &mut Command, limit: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {command:?}: {e}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_within(&mut child, limit);
    let output = Output {
        status: status.clone().unwrap_or_default(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    match status {
        Ok(_) => Ok(output),
        Err(e) => Err(format!(
            "{command:?}: {e}; it printed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// Waits until a TCP socket in the network namespace `netns` listens on
/// `port`, reading the namespace's `/proc/net/tcp{,6}` so the check itself
/// sends no packet.
pub fn wait_for_tcp_listener(netns: &str, port: u16, timeout: Duration) -> Result<(), String> {
    wait_for_socket(
        netns,
        port,
        timeout,
        ["/proc/net/tcp", "/proc/net/tcp6"],
        "0A",
        "TCP",
    )
}

/// Waits until a UDP socket in `netns` is bound to `port` (see
/// [`wait_for_tcp_listener`]).
pub fn wait_for_udp_socket(netns: &str, port: u16, timeout: Duration) -> Result<(), String> {
    // State 07 is TCP_CLOSE, which /proc/net/udp shows for bound sockets.
    wait_for_socket(
        netns,
        port,
        timeout,
        ["/proc/net/udp", "/proc/net/udp6"],
        "07",
        "UDP",
    )
}

fn wait_for_socket(
    netns: &str,
    port: u16,
    timeout: Duration,
    tables: [&str; 2],
    wanted_state: &str,
    proto: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let wanted = format!(":{port:04X} ");
    loop {
        let listening = tables.iter().any(|table| {
            crate::command::ip(&["netns", "exec", netns, "cat", table])
                .map(|out| {
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .skip(1)
                        .any(|line| {
                            let mut fields = line.split_whitespace();
                            let local = fields.nth(1).unwrap_or("");
                            let state = fields.nth(1).unwrap_or("");
                            format!("{local} ").ends_with(&wanted) && state == wanted_state
                        })
                })
                .unwrap_or(false)
        });
        if listening {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "nothing listens on {proto} port {port} in namespace {netns} after {timeout:?}"
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_ends_in_time_gives_its_output() {
        let out = output_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .expect("finished");
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_command_that_hangs_is_killed_and_what_it_printed_is_kept() {
        let started = Instant::now();
        let err = output_within(
            Command::new("sh").args(["-c", "echo before-the-hang; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .expect_err("killed");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(err.contains("was killed"), "{err}");
        assert!(err.contains("before-the-hang"), "{err}");
    }
}
