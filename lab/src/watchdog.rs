//! Turning a hung test into a failure that says where it hung.
//!
//! A test that waits forever (on a child that never exits, a stream that
//! never ends) would otherwise run until CI's own time limit and leave no
//! clue. A [`Watchdog`] armed at the start of a test prints what every
//! process the test started is doing once the limit passes (state, kernel
//! wait channel and stack, and a `gdb` backtrace where gdb is installed),
//! then kills those processes so the test's waits return and it fails with
//! its own cleanup. If the test is still stuck after that, in its own code,
//! the process is aborted.

use std::{
    fs,
    io::Write,
    process::Command,
    sync::mpsc::{self, RecvTimeoutError, Sender},
    thread,
    time::Duration,
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// How long a test may go on after its children were killed.
const GRACE: Duration = Duration::from_secs(30);

/// Fails a hung test loudly; disarmed when dropped.
#[derive(Debug)]
pub struct Watchdog {
    disarm: Option<Sender<()>>,
}

impl Watchdog {
    /// Arms a watchdog for the test `what`, which should end within `limit`.
    pub fn arm(what: &str, limit: Duration) -> Self {
        Self::start(what, limit, true, to_stderr)
    }

    fn start(what: &str, limit: Duration, gdb: bool, report: fn(&str)) -> Self {
        let (disarm, disarmed) = mpsc::channel::<()>();
        let what = what.to_string();
        thread::spawn(move || {
            if disarmed.recv_timeout(limit) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            report(&format!(
                "\n*** WATCHDOG: {what} still runs after {limit:?}; what its processes are doing:\n{}\
                 *** WATCHDOG: killing the processes {what} started\n",
                describe_processes(gdb)
            ));
            for pid in descendants(std::process::id()) {
                if let Ok(raw) = i32::try_from(pid) {
                    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
                }
            }
            if disarmed.recv_timeout(GRACE) == Err(RecvTimeoutError::Timeout) {
                report(&format!(
                    "*** WATCHDOG: {what} is still stuck {GRACE:?} later, in its own code; aborting\n"
                ));
                std::process::abort();
            }
        });
        Self {
            disarm: Some(disarm),
        }
    }
}

/// Writes straight to the file descriptor: the test harness's output
/// capture would hide the report if the process has to be aborted.
fn to_stderr(report: &str) {
    let _ = std::io::stderr().lock().write_all(report.as_bytes());
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(disarm) = self.disarm.take() {
            let _ = disarm.send(());
        }
    }
}

/// The parent process id in `/proc/PID/stat` (the field after the command
/// name, which is in parentheses and may itself contain spaces).
fn parent_of(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Every process below `root`, parents before children.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(parent_of)
        {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        next += 1;
    }
    found.remove(0);
    found
}

/// One paragraph per process (this one and its descendants).
fn describe_processes(gdb: bool) -> String {
    let mut out = String::new();
    let me = std::process::id();
    for pid in std::iter::once(me).chain(descendants(me)) {
        let read =
            |file: &str| fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
        let cmdline = read("cmdline").replace('\0', " ");
        let state = read("status")
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("State: ?")
            .to_string();
        out.push_str(&format!("--- pid {pid}: {} [{state}]\n", cmdline.trim()));
        for task in fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = task.path();
            let get = |file: &str| fs::read_to_string(dir.join(file)).unwrap_or_default();
            out.push_str(&format!(
                "  thread {} {} waiting in {}\n",
                task.file_name().to_string_lossy(),
                get("comm").trim(),
                get("wchan").trim()
            ));
            for frame in get("stack").lines().take(8) {
                out.push_str(&format!("    {frame}\n"));
            }
        }
        if gdb {
            out.push_str(&gdb_backtrace(pid));
        }
    }
    out
}

/// User-space backtraces of every thread, if gdb is installed (bounded in
/// time, since gdb itself could wait on a stuck process).
fn gdb_backtrace(pid: u32) -> String {
    let output = Command::new("timeout")
        .args(["20", "gdb", "-batch", "-nx", "-p", &pid.to_string()])
        .args(["-ex", "thread apply all bt 25"])
        .output();
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('#') || l.starts_with("Thread"))
            .map(|l| format!("  {l}\n"))
            .collect(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_found_after_names_with_spaces_and_parentheses() {
        assert_eq!(parent_of("42 (a b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("42 (x) R 1 42"), Some(1));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn children_of_this_process_are_found_and_a_disarmed_watchdog_does_nothing() {
        static REPORTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let count = |_: &str| {
            REPORTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        };
        drop(Watchdog::start(
            "unit test",
            Duration::from_millis(50),
            false,
            count,
        ));
        let mut child = Command::new("sleep").arg("5").spawn().expect("sleep");
        // Until the child has exec'd, its command line is this binary's.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        while !fs::read(&cmdline).is_ok_and(|c| c.starts_with(b"sleep")) {
            thread::sleep(Duration::from_millis(5));
        }
        let found = descendants(std::process::id());
        let report = describe_processes(false);
        let _ = child.kill();
        child.wait().expect("reaped");
        assert!(
            found.contains(&child.id()),
            "{found:?} lacks {}",
            child.id()
        );
        assert!(
            report.contains(&format!("pid {}: sleep 5", child.id())),
            "{report}"
        );
        thread::sleep(Duration::from_millis(100));
        assert_eq!(REPORTS.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
